"""vgsite: experiments on vanishing and exploding gradients, and the site that shows them."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "figures"
