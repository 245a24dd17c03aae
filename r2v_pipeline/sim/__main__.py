"""``python -m r2v_pipeline.sim``: the simulator without the rest of the ``r2v`` command."""

import sys

from .command import main

sys.exit(main())
