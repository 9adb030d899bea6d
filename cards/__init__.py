"""Members, cards, the card ledger and the benefits catalog."""
