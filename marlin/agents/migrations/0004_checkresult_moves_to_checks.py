# CheckResult now belongs to the checks app (checks 0001 takes over its state and its table).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0003_run_partner"),
        ("checks", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="CheckResult")],
            database_operations=[],
        ),
    ]
