from mailagent.models import Base
from plinth.encryption import render_item
from plinth.migrations import run_env

run_env(Base.metadata, render_item=render_item)
