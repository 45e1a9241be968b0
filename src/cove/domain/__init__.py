"""Pure data and rules. Imports only the standard library."""
