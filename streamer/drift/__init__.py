"""Drift monitoring, in-stream, at O(1) amortized cost per event.

``concept``  the monitor of the champion's per-event error
``detectors`` concept drift detectors by name: DualADWIN (the default), OneSidedADWIN, River's
``window``   reference vs sliding window per column: PSI, Jensen-Shannon, KS, rates (``stats``)
``schema``   fields that are new, missing or retyped against the expected schema
``monitor``  all signals of one partition, and the drift events their level changes make
``reference`` pinned references built offline from a trusted data set
"""
