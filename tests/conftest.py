"""Suite-wide setup."""

from __future__ import annotations

import signal

# A background job (`cmd &` in a non-interactive shell, nohup) starts with SIGINT ignored, and an
# ignored signal stays ignored across exec: the Ctrl-C tests' scripts (plain python and under
# dsprof) would never see theirs. A handler, unlike SIG_IGN, is reset to the default in children.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
