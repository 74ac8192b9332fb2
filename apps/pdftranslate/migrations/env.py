from pdftranslate.models import Base
from plinth.migrations import run_env

run_env(Base.metadata)
