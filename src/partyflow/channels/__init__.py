"""Chat platforms (Slack, Discord, Telegram, Feishu/Lark, signed webhooks) answered by published workflows.
See docs/channels.md."""

from partyflow.channels.config import ChannelConfig, ChannelConfigError, load_channels
from partyflow.channels.runtime import ChannelRuntime, Inbound, split_text
from partyflow.channels.service import channels_extension, run_polling, start_channels

__all__ = ["ChannelConfig", "ChannelConfigError", "ChannelRuntime", "Inbound", "channels_extension",
           "load_channels", "run_polling", "split_text", "start_channels"]
