"""``python -m dgm``: the command line (also under ``torchrun -m dgm``)."""

import sys

from .cli import main

sys.exit(main())
