# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Compose scikit-learn's digit scans into detection and segmentation scenes
(COCO annotations with masks, and label maps; no download).

Example:
    python tools/dataset_converters/prepare_digit_scenes.py data/digit_scenes
"""
import argparse

from mmdynamixer.datasets.digit_scenes import prepare_digit_scenes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('root', nargs='?', default='data/digit_scenes')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the scenes (the digits keep the Quick '
                        "start's split)")
    args = parser.parse_args(argv)
    counts = prepare_digit_scenes(args.root, seed=args.seed)
    print(f'Wrote {sum(counts.values())} digit scenes to {args.root}: '
          + ', '.join(f'{k} {v}' for k, v in counts.items()))


if __name__ == '__main__':
    main()
