"""The message ledger, the outbox and the owner's inbox: what the Messenger deployment keeps."""
