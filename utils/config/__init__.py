"""Settings and user-facing errors: `config.py` (DEFAULTS, config files, `--set` overrides,
validation, `ConfigError`), `files.py` (running a config file after its `_base_` chain, the
copy kept in a run folder) and `errors.py` (which exceptions end a run with one line).

Of the rest of the project it imports only the dataset and method specs (`data.specs`,
`utils.methods`, standard library at import) and, for the folder dataset, its image reader; no
torch at module level: `python main.py --help` and a mistyped setting answer before any heavy
import.
"""
