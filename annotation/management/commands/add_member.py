"""`add_member SLUG USERNAME --role R [--create-user]`: give a user a role and print their API token."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from annotation.errors import ApplicationError
from annotation.management.commands._common import command_error
from annotation.models import Role
from annotation.services.projects import membership_add, project_get_by_slug, user_create, user_get, user_token


class Command(BaseCommand):
    help = "Add a user to a project with a role (or change their role) and print their API token."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=Role.values,
                            help="annotator: ranks tasks; engineer: also generates, exports and trains; admin: also manages "
                                 "the project and its members")
        parser.add_argument("--create-user", action="store_true", help="Create the user if missing (prints a generated password once).")
        parser.add_argument("--email", default="", help="With --create-user: the new user's e-mail address.")

    def handle(self, *args, **options) -> None:
        try:
            project = project_get_by_slug(slug=options["slug"])
            created = None
            if options["create_user"]:
                try:
                    user = user_get(username=options["username"])
                except ApplicationError:
                    created = user_create(username=options["username"], email=options["email"])
                    user = created.user
            else:
                user = user_get(username=options["username"])
            membership_add(project=project, user=user, role=options["role"])
        except ApplicationError as exc:
            if exc.code == "not_found" and not options["create_user"] and "user" in exc.message.lower():
                exc.message += " Pass --create-user to create it."
            raise command_error(exc) from exc
        if created is not None:
            self.stdout.write(f"Created user {user.username} with password: {created.password}")
            self.stdout.write("(shown once: only its hash is stored)")
        self.stdout.write(f"{user.username} is {options['role']} in {project.slug}")
        self.stdout.write(f"API token: {user_token(user=user)}")
