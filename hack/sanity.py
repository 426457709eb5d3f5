"""Run `ansible-test sanity` on a copy of the collection laid out as ansible_collections/talos/linux.

The same as `python hack/run_ansible_test.py sanity`; the copy is .cache/sanity/ansible_collections/talos/linux.

Usage: python hack/sanity.py [ansible-test sanity arguments...]
"""
import sys

from run_ansible_test import sanity

if __name__ == "__main__":
    sys.exit(sanity(sys.argv[1:]))
