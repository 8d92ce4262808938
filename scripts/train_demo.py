"""Train, export and evaluate the demo models (see nodegraph_demo/train.py).

    python scripts/train_demo.py --stage all --work runs/demo --minutes 15 --export --out runs/demo/export --eval
    python scripts/train_demo.py --stage all --work /tmp/demo --minutes 1 --tiny --export --out /tmp/demo/out --eval
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from nodegraph_demo.train import main

if __name__ == "__main__":
    sys.exit(main())
