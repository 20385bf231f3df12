"""``python -m sglang_ext.profile [profile flags] [sglang server flags]``."""

import sys

from .launch import main

sys.exit(main())
