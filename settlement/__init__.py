"""Settlement: merchants' claims for the union share of their sales, and their reconciliation."""
