"""``python -m geounet.cli`` (as torchrun launches it): the ``geounet`` command."""

import sys

from geounet.cli.command import main

sys.exit(main())
