from setuptools import find_packages, setup


def read_version():
    scope = {}
    with open('mmdynamixer/version.py') as f:
        exec(f.read(), scope)
    return scope['__version__']


def read_requirements(path='requirements.txt'):
    with open(path) as f:
        return [line.split('#')[0].strip() for line in f if line.split('#')[0].strip()]


setup(
    name='mmdynamixer',
    version=read_version(),
    description='DynaMixer (ICML 2022) for MMPretrain, MMDetection and MMSegmentation',
    long_description=open('README.md').read() if __import__('os').path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(include=['mmdynamixer', 'mmdynamixer.*']),
    include_package_data=True,
    install_requires=read_requirements(),
    zip_safe=False,
)
