# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Write scikit-learn's bundled digits as an image-folder data set.

Example:
    python tools/dataset_converters/prepare_digits.py data/digits
"""
import argparse

from mmdynamixer.datasets import prepare_digits


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('root', nargs='?', default='data/digits')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    counts = prepare_digits(args.root, seed=args.seed)
    print(f'Wrote {sum(counts.values())} digit images to {args.root}: '
          + ', '.join(f'{k} {v}' for k, v in counts.items()))


if __name__ == '__main__':
    main()
