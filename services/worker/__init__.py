"""The arq worker: invitation batches, reminders and message delivery."""
