"""Flex Template entry point (``FLEX_TEMPLATE_PYTHON_PY_FILE``).

Dataflow's launcher runs ``python main.py --model=... [--scenarios=...] [--record=...]
[--stages=...] [--params=...] [--ship_code=...] --project=... --region=... ...``; run it the
same way locally with ``--runner=DirectRunner``. See plugboard_beam/dataflow/launcher.py.
"""

from plugboard_beam.dataflow.launcher import main
from plugboard_beam.shutdown import exit_process

if __name__ == "__main__":
    exit_process(main())
