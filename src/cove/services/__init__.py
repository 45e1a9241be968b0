"""Use cases: plain functions over ports. No HTTP, SQL or engine words here."""
