"""Your own data, by example: MoSE on a dataset in the folder layout (`data/folder/`).

Write the example data first (synthetic blobs as grey PNGs, 2-5 raters per image), then train:

    python -m data.folder example synthetic_data/folder_example
    python -m data.folder check synthetic_data/folder_example --n-classes 2
    python main.py experiments/folder_example.py
    python main.py experiments/folder_example.py \
        --predict synthetic_data/folder_example/test/images --out log/folder/predictions

For your own data copy this file and change data_folder, n_classes and input_channels (or leave
it unset: it is read from the first image); image_size, if you set it, is checked against the
data; eval_class_ids defaults to every foreground class 1..n_classes-1. Training checks the
dataset first and stops on any problem.
"""

experiment_name = "folder_example"
log_dir_name = "folder"
dataset = "folder"
data_folder = "synthetic_data/folder_example"
n_classes = 2  # background and lesion
input_channels = 1  # grey PNGs
num_filters = [8, 16, 32, 32]  # a small U-Net for 32x32 images, as the synthetic LIDC demo
latent_dim = 2
gamma0 = 1 / 16  # = 1/(K*S): every sample carries the same mass until the masks are learnt,
gamma_scheduler_options = dict(values=[1.0], milestones=[6])  # then the weights are fitted
train_batch_size = 32
val_batch_size = 50
test_batch_size = 50
epochs = 16
lr = 3e-3
lr_schedule = "cosine"
test_after_training = True
