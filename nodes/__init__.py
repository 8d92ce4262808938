"""The built-in node library; each module registers one family of nodes on import."""
