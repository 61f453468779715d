"""The call engine: registrar, B2BUA, CDR and active calls (ENGINEERING.md §1)."""
