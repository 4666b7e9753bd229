# The wheel holds executables for Linux x86-64 but no Python extension: it is a platform wheel
# (files in platlib, which auditwheel requires) tagged py3-none-linux_x86_64 (any Python 3),
# which auditwheel then raises to a manylinux tag.
from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.dist import Distribution


class BinaryDistribution(Distribution):
    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    def get_tag(self):
        return "py3", "none", super().get_tag()[2]


setup(distclass=BinaryDistribution, cmdclass={"bdist_wheel": PlatformWheel})
