# The Quick start's model with static token mixing (the paper's ablation:
# one learned mixing matrix per segment instead of matrices generated from
# the tokens), trained the same way; the "static" row of the digit-scene
# transfer table (configs/dynamixer_detection/README.md).
#   python tools/train.py configs/dynamixer/dynamixer-tiny-static_1xb64_digits.py
_base_ = './dynamixer-tiny_1xb64_digits.py'

model = dict(backbone=dict(generator='static'))
