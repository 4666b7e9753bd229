"""The `rnnkit` command (and `python -m rnnkit`): runs the rnnkit binary this package carries.

The process becomes the binary (`os.execv`): the exit status, signals, standard streams and
the working folder are the tool's own. The binary's launcher then picks the build for this
CPU (`RNNKIT_CPU_LEVEL=x86-64` forces the baseline build).
"""

import os
import sys

from ._tool import executable


def main() -> None:
    """Replaces this process with the bundled `rnnkit`, passing the arguments on."""
    path = executable()
    try:
        os.execv(path, ["rnnkit", *sys.argv[1:]])
    except OSError as error:
        sys.stderr.write(f"rnnkit: error: cannot run the bundled rnnkit ({path}): {error.strerror}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
