"""Chat adapters: one module per platform behind the small protocol in `bot.chat.base`."""
