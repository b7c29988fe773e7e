"""The multimodal Cityscapes classes as plain constants: the 25 ids with their names and
colours, void, the evaluated classes, the five flip classes and their probabilities, and the
image statistics (docs/datasets.md).

Standard library only, so that the dataset spec (`data.specs`) reads them while a config is
checked; the mapping from Cityscapes label ids and the 32 modes are `data.cityscapes_labels`'.

- The 25 ids: 0 void (every class Cityscapes ignores in evaluation), the 19 evaluated classes as
  their usual train id + 1 (road 1 ... bicycle 19), and the flipped copies sidewalk_2 20,
  person_2 21, car_2 22, vegetation_2 23, road_2 24.
- Mode m (0..31) flips flip class i (order sidewalk, person, car, vegetation, road) iff bit 4 - i
  of m is set; its probability is the product of p_i (flipped) or 1 - p_i (kept).
"""

NUM_CLASSES = 25
NUM_MODES = 32
EVAL_CLASS_IDS = (2, 12, 14, 9, 1, 20, 21, 22, 23, 24)

CLASS_NAMES = (
    "void",
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
    "sidewalk_2",
    "person_2",
    "car_2",
    "vegetation_2",
    "road_2",
)

# Flip classes in mode-bit order (bit 4 - i of the mode index flips class i).
FLIP_CLASSES = (2, 12, 14, 9, 1)
FLIPPED_IDS = (20, 21, 22, 23, 24)
FLIP_NAMES = ("sidewalk", "person", "car", "vegetation", "road")
FLIP_PROBS = (8 / 17, 7 / 17, 6 / 17, 5 / 17, 4 / 17)

IMAGE_MEAN = (0.28689554, 0.32513303, 0.28389177)
IMAGE_STD = (0.18696375, 0.19017339, 0.18720214)

# Colours of the 19 evaluated classes (Cityscapes' own, train-id order), void black, then
# distinct saturated colours for the flipped copies, unlike any class colour above: sidewalk_2
# cyan, person_2 magenta, car_2 orange, vegetation_2 green, road_2 white.
PALETTE = (
    (0, 0, 0), (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156),
    (190, 153, 153), (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35),
    (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
    (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
    (0, 255, 255), (255, 0, 255), (255, 128, 0), (0, 255, 0), (255, 255, 255),
)
