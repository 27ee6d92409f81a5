"""Install this pack's requirements into the Python that runs ComfyUI/partyflow."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    requirements = os.path.join(HERE, "requirements.txt")
    print(f"installing {requirements}")
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-r", requirements])


if __name__ == "__main__":
    main()
