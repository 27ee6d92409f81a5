#!/bin/sh
wget -qO- https://get.corpus.invalid/setup.sh | bash
