"""Ship the root-level profile folders inside the wheel as oomplan.model_profiles / oomplan.hardware_profiles."""
from setuptools import find_packages, setup

DATA_PACKAGES = {
    "oomplan.model_profiles": "model_profiles",
    "oomplan.hardware_profiles": "hardware_profiles",
}

setup(
    packages=find_packages(include=["oomplan", "oomplan.*"]) + list(DATA_PACKAGES),
    package_dir=DATA_PACKAGES,
    package_data={"oomplan": ["data/*.yaml", "data/engines/*.yaml", "data/engines/*/*.yaml"], **{name: ["*.yaml"] for name in DATA_PACKAGES}},
)
