"""image classification: fine-tune an ImageNet backbone on any ImageFolder tree with train/ and test/

d2l's recipe: a new Xavier-initialised head sized for the classes, SGD with momentum and weight
decay, the head at `lr * head_lr_mult`, the first `frozen_layers` backbone stages frozen. The data
must be given (--data or $SEARCH_DATA_DIR); `hotdog` is the same task with d2l's data as default.
"""

from spaces import SPACES_DIR
from trainables import image_classifier, image_predict, image_space, image_task
from trainables.backbones import BACKBONES
from trainables.basics import byte_size, whole_number
from trainables.task import Flag, Task

FLAGS = (
    Flag(
        ("--backbone",),
        {
            "default": "auto",
            "help": "auto, or one of " + ", ".join(BACKBONES) + " or timm:NAME, or several joined by + "
            "(side by side under one head); auto takes resnet18 when its ImageNet weights can be had, else "
            "mobilenet_v2, and without --space the search then uses mobilenet_v2+efficientnet_lite0 when "
            "both ship installed; a space's backbone: {choice: [...]} searches several (default: %(default)s)",
        },
    ),
    Flag(("--image-size",), {"type": whole_number, "help": "training resolution (default: 160 on CPU, 224 on GPU)"}),
    Flag(
        ("--memory-budget",),
        {
            "type": byte_size,
            "metavar": "SIZE",
            "help": "decoded images up to this size (e.g. 4G) go through Ray's object store, one copy per node; "
            "a larger set is mapped from its decoded file on disk (default: 30%% of this machine's RAM)",
        },
    ),
    Flag(
        ("--skip-bad-images",),
        {"action": "store_true", "help": "skip and count unreadable images instead of stopping at the first"},
    ),
)

TASK = Task(
    name="image",
    summary=__doc__.splitlines()[0],
    metric="val_accuracy",
    mode="max",
    hyperparameters=image_classifier.HYPERPARAMETERS,
    space_file=SPACES_DIR / "hotdog.yaml",
    data_help="ImageFolder tree with train/ and test/, one sub-folder of images per class (default: $SEARCH_DATA_DIR)",
    default_trials=16,
    max_epochs_help=f"{image_task.DEFAULT_MAX_EPOCHS}",
    flags=FLAGS,
    prepare=image_task.prepare_search,
    trial_data=image_task.trial_data,
    fit=image_classifier.fit_image_classifier,
    final_data=image_task.final_data,
    load_model=image_task.load_model,
    evaluate=image_task.evaluate,
    save_model=image_task.save_model,
    compares_scratch=True,
    test_extras=image_predict.class_report,
    preprocessing=image_predict.preprocessing,
    predict=image_predict.predict,
    export_graph=image_predict.export_graph,
    choose_space=image_space.choose_space,
)
