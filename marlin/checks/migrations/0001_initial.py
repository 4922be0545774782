# CheckResult moved here from the agents app: the table keeps its name and its rows; only
# Django's model state (and the content type, so admin permissions follow) changes apps.

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


def _relabel(apps, schema_editor, old, new):
    content_types = apps.get_model("contenttypes", "ContentType")
    if not content_types.objects.filter(app_label=new, model="checkresult").exists():
        content_types.objects.filter(app_label=old, model="checkresult").update(app_label=new)


def move_content_type(apps, schema_editor):
    _relabel(apps, schema_editor, "agents", "checks")


def move_content_type_back(apps, schema_editor):
    _relabel(apps, schema_editor, "checks", "agents")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("agents", "0003_run_partner"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="CheckResult",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("check_index", models.PositiveSmallIntegerField()),
                        ("name", models.CharField(max_length=200)),
                        ("kind", models.CharField(max_length=20)),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("queued", "Queued"),
                                    ("running", "Running"),
                                    ("passed", "Passed"),
                                    ("failed", "Failed"),
                                    ("error", "Error"),
                                    ("timed_out", "Timed out"),
                                ],
                                db_index=True,
                                default="queued",
                                max_length=20,
                            ),
                        ),
                        ("passed", models.PositiveIntegerField(default=0)),
                        ("failed", models.PositiveIntegerField(default=0)),
                        ("errors", models.PositiveIntegerField(default=0)),
                        ("skipped", models.PositiveIntegerField(default=0)),
                        ("tests", models.JSONField(blank=True, default=list)),
                        ("findings", models.JSONField(blank=True, default=list)),
                        ("log", models.TextField(blank=True)),
                        ("detail", models.TextField(blank=True)),
                        ("limits", models.JSONField(blank=True, default=dict)),
                        ("duration_seconds", models.FloatField(blank=True, null=True)),
                        ("attempts", models.PositiveSmallIntegerField(default=0)),
                        ("lease_expires_at", models.DateTimeField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "candidate",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="check_results",
                                to="agents.candidate",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "agents_checkresult",
                        "ordering": ["candidate", "check_index"],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("candidate", "check_index"), name="unique_check_result"
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_type, move_content_type_back),
    ]
