"""image classification, d2l's hotdog fine-tuning (any ImageFolder with train/ and test/)

The `image` task with d2l's example data as its default: without --data (or $SEARCH_DATA_DIR),
hotdog.zip is downloaded once into the user cache, its checksum checked.
"""

import dataclasses
import functools

from trainables import image_space, image_task, images
from trainables.tasks import image


def hotdog_data():
    return images.download_hotdog(images.cache_dir())


TASK = dataclasses.replace(
    image.TASK,
    name="hotdog",
    summary=__doc__.splitlines()[0],
    data_help="ImageFolder tree with train/ and test/ (default: $SEARCH_DATA_DIR, else d2l's hotdog.zip downloaded "
    "into ~/.cache/search)",
    prepare=functools.partial(image_task.prepare_search, default_data=hotdog_data),
    choose_space=functools.partial(image_space.choose_space, default_data=hotdog_data),
)
