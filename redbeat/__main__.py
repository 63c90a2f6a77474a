"""``python -m redbeat``: the ``redbeat`` command line."""

from .cli import main

if __name__ == '__main__':
    main(prog_name='redbeat')
