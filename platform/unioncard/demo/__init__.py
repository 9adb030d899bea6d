"""A whole demo district and a month of its till traffic, generated in Python and loaded by COPY.

`figures` holds DESIGN.md's numbers and the district's names; `model`, `people`, `merchants` and
`traffic` draw the district and its month; `sql` and `load` put it in the database in one
transaction; `settlement` then claims, reconciles and pays the month through the settlement code.
"""

from unioncard.demo.figures import DemoError
from unioncard.demo.load import load_demo

__all__ = ["DemoError", "load_demo"]
