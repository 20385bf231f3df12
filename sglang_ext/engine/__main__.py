import sys

from sglang_ext.engine.cli import main

sys.exit(main())
