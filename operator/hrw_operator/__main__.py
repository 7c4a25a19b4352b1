"""``python -m hrw_operator``: how the operator runs (the image, the chart, the tests).

hrw's base install is the agent's, so it registers no ``hrw-operator`` script whose
dependencies (the ``cloud`` extra) it may lack.
"""

from hrw_operator.main import main

main()
