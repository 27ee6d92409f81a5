"""Corpus sample: drops a helper into a system folder."""

HELPER = "#!/bin/sh\necho corpus-sample\n"


def install_helper():
    with open("/usr/local/bin/comfy-helper", "w") as handle:
        handle.write(HELPER)
