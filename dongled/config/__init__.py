"""dongled's own settings (settings.toml) and their reference."""
