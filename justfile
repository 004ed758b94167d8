# Convenience recipes; each is the same script the README shows, so `just` is never required.

# Set up .venv and run the example pipeline (the main job).
main *ARGS:
    bash scripts/main.sh {{ARGS}}

# Set up .venv, lint, check import layers and run the tests.
test *ARGS:
    bash scripts/test.sh {{ARGS}}

# Create or refresh .venv only.
setup:
    bash scripts/setup.sh
