"""The bundled scenario curriculum (TOML files, one folder per topic); installed as lab.scenarios."""
