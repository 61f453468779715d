"""Services the engine and the API use that talk to the outside world (e-mail)."""
