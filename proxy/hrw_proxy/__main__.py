"""``python -m hrw_proxy``: how the API proxy runs (the image, the chart, the tests).

hrw's base install is the agent's, so it registers no ``hrw-proxy`` script whose
dependencies (the ``cloud`` extra) it may lack.
"""

import sys

from hrw_proxy.main import main

sys.exit(main())
