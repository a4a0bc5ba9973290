"""Messages to residents: the outbox and its delivery (channel, texts, print file, webhook)."""
