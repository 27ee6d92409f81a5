"""The node's toolbar icon, embedded so the pack works without its web folder."""

import base64

ICON_PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAABY0lEQVR4nGNgUPXKn7LzHrOGb9H0"
    "PQ/ZtANKZ+1/wqkXXDH30HMew7DqBUdf8ZtE1i0+8VbIPKZx2WkGboPQqvlHXvIZR9QuOv5G0Cy6"
    "Yemp9yKWcc0rzn4St0lsW33hq5R9Sue6yz9kndJ7Nl5jELNOaF11/oukXXLH2kvfZRzTujdc/SXv"
    "ktm3+cZfJfecidtuo7qBQdEte8LWW/9VPPMm77jLpO5TOG33A1Yt/5KZ+x5z6AaVzzn4DNUNDDqB"
    "ZbMPPOXSD6mcd/gFr1F4zcJjrwVMo+qXnHwnbBHbtPzMR1Q3MIB98kHUKr5l5bnPErZJ7WsufpN2"
    "SO1af+WnnHNG76brf1DdwAD2yW8F16z+LTf/KXvkTtp+h1HNu2Dqrvssmn7FM/Y+Ykd1AwORoQl3"
    "AwORoQl3AwORoQl3AwORoQl3AwORoQl3AwORoQl3AwORoQl3AwORoQl3AwORoQl3AwAyOX8Q5Y9S"
    "SAAAAABJRU5ErkJggg=="
)


def icon_bytes():
    return base64.b64decode(ICON_PNG_BASE64)
