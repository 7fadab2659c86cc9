"""Infrastructure shared by the write and read sides: settings, the database server, migrations."""
