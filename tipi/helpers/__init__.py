"""Script helpers, adoptable one import at a time; each works the same in a plain script and
inside a running pipeline:

    from tipi.helpers import progress_bar, logger, device_manager
    from tipi.helpers import tqdm, trange  # instead of `from tqdm.auto import tqdm, trange`
"""

from tipi.helpers import device_manager, logger
from tipi.helpers.progress import progress_bar, tqdm, trange

__all__ = ["device_manager", "logger", "progress_bar", "tqdm", "trange"]
