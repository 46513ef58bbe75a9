"""The cogs' Discord toolkit (like RoboDanny's ``cogs/utils``): not a cog, never loaded as one.

Everything here imports discord and is shared by several cogs; cogs import it, never each
other. ``bot/app.py`` (the composition root) also uses it for the command tree and the bot's
analysis cache. Nothing in here imports ``bot.app`` at run time (only for type hints).

* :mod:`.embeds`: analysis embeds within Discord's limits.
* :mod:`.errors`: user-facing error text, the private reply and :class:`.errors.ClustersTree`,
  the one app-command error handler.
* :mod:`.permissions`: permission names, the "can I post results here" check and the Manage
  Server check.
* :mod:`.progress`: progress text and the edit :class:`.progress.Throttle`.
* :mod:`.delivery`: result messages and where they go (interaction, posted message, channel).
* :mod:`.views`: persistent components of stored analyses (browse, page, download, save).
* :mod:`.digest_embeds`: how a digest and the digest list are shown.
"""
