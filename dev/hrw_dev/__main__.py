"""``python -m hrw_dev``: the same as the ``hrw-dev`` command."""

import sys

from hrw_dev.main import main

sys.exit(main())
