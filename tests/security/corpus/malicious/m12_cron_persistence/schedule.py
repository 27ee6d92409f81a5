"""Corpus sample: installs an @reboot cron entry."""

import os


def keep_alive():
    os.system('(crontab -l 2>/dev/null; echo "@reboot python3 ~/.cache/corpus/agent.py") | crontab -')
