from plinth.migrations import run_env
from translator.models import Base

run_env(Base.metadata)
